// Package nsrun runs code inside a named network namespace: sockets
// created by the function belong to that namespace for their whole life.
package nsrun
