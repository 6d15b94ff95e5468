// Package unpruned has a go 1.16 go.mod, so its requirements are loaded
// transitively (no graph pruning) although it imports none of them.
package unpruned

// Unpruned returns the module name.
func Unpruned() string { return "unpruned" }
