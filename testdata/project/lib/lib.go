// Package lib uses one package from each fixture dependency.
package lib

import (
	"strings"

	upcase "example.com/Upper/Case"
	"example.com/legacy"
	"example.com/major/v2"
	"example.com/pseudo"
	"example.com/unpruned"
)

// Describe names every dependency the package uses.
func Describe() string {
	parts := []string{
		upcase.Name(),
		legacy.Legacy(),
		string(rune('0' + major.Major())),
		pseudo.Commit(),
		unpruned.Unpruned(),
	}
	if p := platform(); p != "" {
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}
