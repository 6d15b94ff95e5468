// Package Inner is a nested package with an upper-case directory name.
package Inner

// Name returns the package name.
func Name() string { return "Inner" }
