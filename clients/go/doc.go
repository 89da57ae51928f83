// Package vmcpkeepalive is the Go client of vmcp-keepalive: a vMCP replica registers, touches
// and ends its sessions through the ingress stream (<sessions prefix>:session-messages), reads
// events from the event stream (<events prefix>:session-events) through a consumer group, and
// re-initializes a backend under the pair lock with the re-initialize script. It speaks the
// contract in docs/contract.md ("From another language") with plain Redis commands.
package vmcpkeepalive
