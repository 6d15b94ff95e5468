// Package major is a /v2 major-version module.
package major

// Major returns the major version.
func Major() int { return 2 }
