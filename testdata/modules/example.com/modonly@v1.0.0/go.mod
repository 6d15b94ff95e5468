module example.com/modonly

go 1.16
