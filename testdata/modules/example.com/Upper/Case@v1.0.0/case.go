// Package upcase lives at a module path with upper-case letters
// (cache escaping: example.com/!upper/!case).
package upcase

import (
	"example.com/Upper/Case/Inner"
	"example.com/shared"
)

// Name returns a greeting built from this module and its dependency.
func Name() string { return "Upper/Case+" + Inner.Name() + "+" + shared.Version() }
