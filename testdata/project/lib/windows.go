//go:build windows

package lib

import "example.com/winonly"

func platform() string { return winonly.Windows() }
