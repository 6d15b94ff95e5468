module example.com/unpruned

go 1.16

require (
	example.com/modonly v1.0.0
	example.com/shared v1.0.0
)
