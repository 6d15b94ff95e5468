// Package testonly is imported only by a _test.go file of the project.
package testonly

// Equal reports whether a and b are equal.
func Equal(a, b string) bool { return a == b }
