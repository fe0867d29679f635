module example.com/sysread

go 1.19
