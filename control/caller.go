package control

import "context"

// CallerUID is the uid of the local process that made the request of ctx,
// from the socket's peer credentials; false over TCP or when unknown.
func CallerUID(ctx context.Context) (int, bool) {
	p, ok := ctx.Value(peerKey{}).(peer)
	if !ok || !p.ok {
		return 0, false
	}
	return int(p.uid), true
}
