module example.com/stealer

go 1.19
