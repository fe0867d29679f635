module example.com/cgothreads

go 1.19
