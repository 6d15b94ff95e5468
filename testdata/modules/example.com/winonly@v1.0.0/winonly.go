// Package winonly is imported only under //go:build windows.
package winonly

// Windows returns a marker string.
func Windows() string { return "windows" }
