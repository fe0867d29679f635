module example.com/flood

go 1.19
