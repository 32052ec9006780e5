// The main module has k3s's own module path, like k3s's go.mod; the component modules it
// imports are local stand-ins under staging/ (the layout kubernetes uses for k8s.io/*),
// wired in with replace directives so every package carries k3s's REAL import path.
module github.com/k3s-io/k3s

go 1.19

require (
	github.com/flannel-io/flannel v0.0.0
	github.com/k3s-io/kine v0.0.0
	k3sprof.invalid/truth v0.0.0
	k8s.io/apiserver v0.0.0
	k8s.io/kubernetes v0.0.0
)

replace (
	github.com/flannel-io/flannel => ./staging/github.com/flannel-io/flannel
	github.com/k3s-io/kine => ./staging/github.com/k3s-io/kine
	k3sprof.invalid/truth => ./truth
	k8s.io/apiserver => ./staging/k8s.io/apiserver
	k8s.io/kubernetes => ./staging/k8s.io/kubernetes
)
