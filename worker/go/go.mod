module baton.example/baton

go 1.19
