//go:build !windows

package lib

func platform() string { return "" }
