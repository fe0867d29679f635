module example.com/blockspots

go 1.19
