module example.com/blip

go 1.19
