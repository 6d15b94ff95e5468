// Package legacy is a v2 module without a go.mod file (+incompatible).
package legacy

// Legacy reports that this is the legacy module.
func Legacy() string { return "legacy" }
