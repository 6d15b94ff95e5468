// Command project is the ocigo fixture main program.
package main

import (
	"fmt"

	"example.com/project/lib"
)

func main() {
	fmt.Println(lib.Describe())
}
