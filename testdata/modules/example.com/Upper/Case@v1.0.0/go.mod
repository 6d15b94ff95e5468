module example.com/Upper/Case

go 1.21

require example.com/shared v1.1.0
