module example.com/execer

go 1.19
