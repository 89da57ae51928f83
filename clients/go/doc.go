// Package vmcpkeepalive is the Go client of vmcp-keepalive: a vMCP replica registers, touches
// and ends its sessions through the ingress stream (<sessions prefix>:session-messages), reads
// events from the event stream (<events prefix>:session-events) through a consumer group, and
// re-initializes a backend under the pair lock with the re-initialize script. Live sessions are
// registered again every refresh interval (soft state) and touches are debounced, as the
// TypeScript client does. It speaks the contract in docs/contract.md ("From another language")
// with plain Redis commands, through any Redis library behind the Redis interface (redigo
// adapters for a server, a Cluster and Sentinel are included).
package vmcpkeepalive
