module example.com/burnleaf

go 1.19
