module github.com/k3s-io/kine

go 1.19

require k3sprof.invalid/truth v0.0.0
