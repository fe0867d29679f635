module example.com/cgofan

go 1.19
