module example.com/phases

go 1.19
