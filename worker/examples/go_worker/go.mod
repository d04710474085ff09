module baton.example/goworker

go 1.19

require baton.example/baton v0.0.0

// The package lives in this repository: no download, also with GOPROXY=off.
replace baton.example/baton => ../../go
