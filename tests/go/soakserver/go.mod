module example.com/soakserver

go 1.19
