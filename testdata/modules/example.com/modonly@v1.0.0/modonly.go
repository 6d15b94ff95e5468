// Package modonly is never imported: only its go.mod is needed.
package modonly

// ModOnly is never called.
func ModOnly() string { return "modonly" }
