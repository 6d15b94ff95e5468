module example.com/project

go 1.22

require (
	example.com/Upper/Case v1.0.0
	example.com/legacy v2.0.0+incompatible
	example.com/major/v2 v2.1.0
	example.com/pseudo v0.0.0-20230102030405-abcdef123456
	example.com/testonly v1.0.0
	example.com/unpruned v1.0.0
	example.com/winonly v1.0.0
)

require example.com/shared v1.1.0 // indirect
