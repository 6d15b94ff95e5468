// Package shared is required at two versions in the fixture graph.
package shared

// Version returns the module version this file was packed at.
func Version() string { return "v1.0.0" }
