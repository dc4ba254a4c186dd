package fakeprovider

// queue holds runs of injected behaviour (a failure mode, a refusal shape),
// each to be used n times, in the order they were queued. Guarded by Server.mu.
type queue[T any] []queued[T]

type queued[T any] struct {
	v T
	n int
}

// push queues v for the next n takes after those already queued.
func (q *queue[T]) push(v T, n int) {
	*q = append(*q, queued[T]{v: v, n: n})
}

// take uses up one of the first run, if any.
func (q *queue[T]) take() (T, bool) {
	if len(*q) == 0 {
		var zero T
		return zero, false
	}
	head := &(*q)[0]
	v := head.v
	head.n--
	if head.n == 0 {
		*q = (*q)[1:]
	}
	return v, true
}
