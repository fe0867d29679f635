module example.com/parker

go 1.19
