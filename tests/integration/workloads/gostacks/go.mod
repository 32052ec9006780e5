module example.com/gostacks

go 1.19
