module baton.example/goworker

go 1.19
