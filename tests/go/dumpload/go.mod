module example.com/dumpload

go 1.19
