module k8s.io/kubernetes

go 1.19

require k3sprof.invalid/truth v0.0.0
