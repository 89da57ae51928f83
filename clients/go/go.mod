module github.com/vmcp-keepalive/clients/go

go 1.19

require (
	github.com/FZambia/sentinel v1.0.0
	github.com/gomodule/redigo v1.8.3
	github.com/mna/redisc v1.1.7
)
