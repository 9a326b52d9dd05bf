# cython: language_level=3
"""The per-datagram part of :mod:`fastfax.transport.t38` (Linux: epoll): a call's socket
reads and writes, its timer, and the endpoint's service of its terminal.

A :class:`Poller` is one epoll set holding the sockets of many calls on one event loop,
registered with the loop as a single reader: when any of its sockets is readable the loop
makes one callback, which asks epoll which ones and reads each dry (up to :data:`DRAIN`
datagrams a socket a pass) with ``recvfrom`` here, instead of one selector event, handle
and Python ``recvfrom`` per datagram. A :class:`CallSocket` is one call's socket in it:
datagrams from its peer (an IP address and port, compared as a socket address, no string
made) go straight to its endpoint's terminal; any other to ``endpoint.datagram_received(data,
addr)`` with the address as Python's socket module gives it; a read error (e.g. an ICMP
port unreachable) to ``endpoint.error_received(exc)``. It writes the call's datagrams to
the peer with ``sendto`` here too. A :class:`PortSocket` is a socket shared by many calls
(:class:`~fastfax.transport.t38.T38Port`), its datagrams looked up by the sender's address.

:class:`Deadlines` keeps the next deadline of every endpoint of one loop under a single
asyncio timer, and :class:`EndpointCore` is the base of
:class:`~fastfax.transport.t38.T38Endpoint`: feeding the terminal, polling it at its
deadlines and sending what it returns.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.math cimport ceil
from libc.string cimport memcmp, memset, strerror

from heapq import heapify, heappop, heappush

#: Most datagrams read from one socket in one pass (the rest wait for the next pass, so
#: one busy call does not hold up the others).
DRAIN = 64
#: Most sockets served in one pass.
EVENTS = 256
#: How early (loop seconds) an endpoint may be served when the shared timer fires for
#: another one: deadlines this close together are served in one pass.
EARLY_S = 0.001
#: The timer's buckets per second (one bucket spans EARLY_S).
TICKS_PER_S = 1000

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr,
                     socklen_t* addrlen)
    ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr,
                   socklen_t addrlen)
    int MSG_DONTWAIT
    int AF_INET
    int AF_INET6

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    uint16_t ntohs(uint16_t)
    uint16_t htons(uint16_t)
    uint32_t ntohl(uint32_t)

cdef extern from "<arpa/inet.h>" nogil:
    const char* inet_ntop(int af, const void* src, char* dst, socklen_t size)
    int inet_pton(int af, const char* src, void* dst)

cdef extern from "<sys/epoll.h>" nogil:
    union epoll_data_t:
        void* ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event* event)
    int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout)
    int EPOLLIN
    int EPOLL_CTL_ADD
    int EPOLL_CTL_DEL
    int EPOLL_CLOEXEC

cdef extern from "<errno.h>" nogil:
    int EWOULDBLOCK

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef enum:
    C_TICKS_PER_S = 1000
    C_DRAIN = 64
    C_EVENTS = 256
    BUF_SIZE = 65536

#: Where datagrams are read (then copied to bytes), for every socket: used with the GIL held.
cdef unsigned char _buf[BUF_SIZE]


cdef object _os_error():
    return OSError(errno, strerror(errno).decode("utf-8", "replace"))


cdef object _address(sockaddr_storage* a):
    """The address as Python's socket module gives it: (host, port) or, for IPv6,
    (host, port, flowinfo, scope_id)."""
    cdef char text[64]
    cdef sockaddr_in* v4
    cdef sockaddr_in6* v6
    if a.ss_family == AF_INET:
        v4 = <sockaddr_in*>a
        inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(v4.sin_port))
    if a.ss_family == AF_INET6:
        v6 = <sockaddr_in6*>a
        inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(v6.sin6_port), ntohl(v6.sin6_flowinfo),
                v6.sin6_scope_id)
    return None


cdef bint _sockaddr(tuple peer, int family, sockaddr_storage* out, socklen_t* length) except -1:
    """``peer`` (numeric host, port) as a socket address of ``family`` in ``out``; False
    when the host is not a numeric address of that family."""
    cdef sockaddr_in* v4 = <sockaddr_in*>out
    cdef sockaddr_in6* v6 = <sockaddr_in6*>out
    cdef bytes host = str(peer[0]).encode("ascii", "replace")
    cdef int port = peer[1]
    memset(out, 0, sizeof(sockaddr_storage))
    if family == AF_INET and inet_pton(AF_INET, host, &v4.sin_addr) == 1:
        v4.sin_family = AF_INET
        v4.sin_port = htons(port)
        length[0] = sizeof(sockaddr_in)
        return True
    if family == AF_INET6 and inet_pton(AF_INET6, host, &v6.sin6_addr) == 1:
        v6.sin6_family = AF_INET6
        v6.sin6_port = htons(port)
        length[0] = sizeof(sockaddr_in6)
        return True
    return False


cdef class CallSocket:
    """One call's UDP socket (its file descriptor ``fd``, non-blocking, of ``family``) in a
    :class:`Poller`, delivering to ``endpoint`` (see the module notes)."""

    cdef readonly int fd, family
    cdef readonly bint closed
    #: Datagrams its transport has queued (written when the socket is writable again):
    #: the native sends are not used while there are any, to keep the order.
    cdef public Py_ssize_t queued
    cdef EndpointCore endpoint
    #: For a call on a shared socket: the socket's reader, whose queue and state count.
    cdef CallSocket owner
    cdef sockaddr_storage peer
    cdef socklen_t peer_len
    cdef bint has_peer

    def __init__(self, int fd, int family, EndpointCore endpoint, CallSocket owner=None):
        self.fd = fd
        self.family = family
        self.endpoint = endpoint
        self.owner = owner

    def close(self) -> None:
        """Send and read nothing more."""
        self.closed = True

    def set_peer(self, tuple peer) -> bool:
        """Datagrams from ``peer`` (numeric host, port) take the fast path, and
        the native sends go to it. False (and no peer) when the host is not a numeric
        address of the socket's family."""
        self.has_peer = _sockaddr(peer, self.family, &self.peer, &self.peer_len)
        return self.has_peer

    cdef inline bint _from_peer(self, sockaddr_storage* a) noexcept:
        cdef sockaddr_in* p4
        cdef sockaddr_in* a4
        cdef sockaddr_in6* p6
        cdef sockaddr_in6* a6
        if not self.has_peer or a.ss_family != self.peer.ss_family:
            return False
        if a.ss_family == AF_INET:
            p4 = <sockaddr_in*>&self.peer
            a4 = <sockaddr_in*>a
            return p4.sin_port == a4.sin_port and p4.sin_addr.s_addr == a4.sin_addr.s_addr
        p6 = <sockaddr_in6*>&self.peer
        a6 = <sockaddr_in6*>a
        return p6.sin6_port == a6.sin6_port and memcmp(
            &p6.sin6_addr, &a6.sin6_addr, sizeof(in6_addr)) == 0

    cdef int drain(self) except -1:
        """Read what is queued (up to DRAIN datagrams) and hand it on."""
        cdef sockaddr_storage addr
        cdef socklen_t alen
        cdef ssize_t n
        cdef int k
        for k in range(C_DRAIN):
            if self.closed:
                return 0
            alen = sizeof(addr)
            # With the GIL held: _buf is shared by the loops of all threads.
            n = recvfrom(self.fd, _buf, BUF_SIZE, MSG_DONTWAIT, <sockaddr*>&addr, &alen)
            if n < 0:
                if errno == EAGAIN or errno == EWOULDBLOCK:
                    return 0
                if errno == EINTR:
                    continue
                return self._read_error()
            self._deliver(PyBytes_FromStringAndSize(<char*>_buf, n), &addr)
        return 0

    cdef int _deliver(self, data, sockaddr_storage* addr) except -1:
        if self._from_peer(addr):
            return self.endpoint.from_peer(data)
        self.endpoint.datagram_received(data, _address(addr))
        return 0

    cdef int _read_error(self) except -1:
        self.endpoint.error_received(_os_error())
        return 0

    cdef Py_ssize_t send_c(self, list datagrams) except -2:
        """Send ``datagrams`` (bytes) to the peer, in order; return how many were taken
        before the kernel's buffer was full (the rest are the caller's to queue), or -1
        when no peer is set, the socket is closed or (on a shared socket) its transport
        has datagrams queued. Other errors are passed to ``endpoint.error_received`` and
        the datagram dropped, as a datagram transport does."""
        cdef Py_ssize_t k, n = len(datagrams)
        cdef ssize_t r
        cdef bytes d
        if not self.has_peer or self.closed:
            return -1
        if self.owner is not None and (self.owner.queued or self.owner.closed):
            return -1
        for k in range(n):
            d = <bytes>datagrams[k]
            while True:
                r = sendto(self.fd, PyBytes_AS_STRING(d), PyBytes_GET_SIZE(d), MSG_DONTWAIT,
                           <sockaddr*>&self.peer, self.peer_len)
                if r >= 0 or errno != EINTR:
                    break
            if r < 0:
                if errno == EAGAIN or errno == EWOULDBLOCK:
                    return k
                self.endpoint.error_received(_os_error())
        return n


cdef object _key(sockaddr_storage* a):
    """A socket address as a dict key: an int for IPv4 (address and port), bytes for IPv6
    (address and port; flow info and scope left out, as (host, port) leaves them)."""
    cdef sockaddr_in* v4
    cdef sockaddr_in6* v6
    if a.ss_family == AF_INET:
        v4 = <sockaddr_in*>a
        return (<uint64_t>v4.sin_addr.s_addr << 16) | v4.sin_port
    if a.ss_family == AF_INET6:
        v6 = <sockaddr_in6*>a
        return PyBytes_FromStringAndSize(<char*>&v6.sin6_addr, 16) + PyBytes_FromStringAndSize(
            <char*>&v6.sin6_port, 2)
    return None


cdef class PortSocket(CallSocket):
    """A socket shared by many calls (:class:`~fastfax.transport.t38.T38Port`) in a
    :class:`Poller`: a datagram from the peer of a call attached here goes straight to
    that call's endpoint, any other to ``port._dispatch(data, addr)``."""

    cdef object port
    cdef dict calls

    def __init__(self, int fd, int family, port):
        CallSocket.__init__(self, fd, family, None)
        self.port = port
        self.calls = {}

    cdef object _peer_key(self, tuple peer):
        cdef sockaddr_storage a
        cdef socklen_t length
        if not _sockaddr(peer, self.family, &a, &length):
            return None
        return _key(&a)

    def attach(self, tuple peer, EndpointCore endpoint) -> None:
        """Datagrams from ``peer`` (numeric host, port) go to ``endpoint``."""
        key = self._peer_key(peer)
        if key is not None:
            self.calls[key] = endpoint

    def detach(self, tuple peer) -> None:
        """Datagrams from ``peer`` go to the port again."""
        key = self._peer_key(peer)
        if key is not None:
            self.calls.pop(key, None)

    cdef int _deliver(self, data, sockaddr_storage* addr) except -1:
        endpoint = self.calls.get(_key(addr))
        if endpoint is not None:
            return (<EndpointCore>endpoint).from_peer(data)
        self.port._dispatch(data, _address(addr))
        return 0

    cdef int _read_error(self) except -1:
        self.port.error_received(_os_error())
        return 0


cdef class Poller:
    """The epoll set of one event loop's call sockets, registered with the loop as one
    reader while it holds any (see the module notes)."""

    cdef int epfd
    cdef dict socks
    cdef object loop

    def __init__(self, loop):
        self.loop = loop
        self.epfd = -1
        self.socks = {}

    def __dealloc__(self):
        if self.epfd >= 0:
            close(self.epfd)

    def add(self, CallSocket sock) -> None:
        """Start reading ``sock`` (a socket stays in one poller until :meth:`remove`)."""
        cdef epoll_event ev
        if self.epfd < 0:
            self.epfd = epoll_create1(EPOLL_CLOEXEC)
            if self.epfd < 0:
                raise _os_error()
            self.loop.add_reader(self.epfd, self._ready)
        memset(&ev, 0, sizeof(ev))
        ev.events = EPOLLIN
        ev.data.fd = sock.fd
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, sock.fd, &ev) < 0:
            raise _os_error()
        self.socks[sock.fd] = sock

    def remove(self, CallSocket sock) -> None:
        """Stop reading ``sock`` (before its file descriptor is closed); it reads nothing
        more, even in the pass under way."""
        cdef epoll_event ev
        sock.closed = True
        if self.socks.get(sock.fd) is not sock:
            return
        del self.socks[sock.fd]
        epoll_ctl(self.epfd, EPOLL_CTL_DEL, sock.fd, &ev)
        if not self.socks:
            self.loop.remove_reader(self.epfd)
            close(self.epfd)
            self.epfd = -1

    def _ready(self) -> None:
        cdef epoll_event events[C_EVENTS]
        cdef int i, n
        cdef CallSocket sock
        if self.epfd < 0:
            return
        n = epoll_wait(self.epfd, events, C_EVENTS, 0)
        for i in range(n):
            sock = self.socks.get(events[i].data.fd)
            if sock is not None:
                sock.drain()


cdef double _INF = float("inf")


cdef class Deadlines:
    """The next deadlines of every endpoint on one event loop, under one asyncio timer.

    Deadlines are kept in buckets of one tick (:data:`TICKS_PER_S`; the bucket of a
    deadline ``when`` is ``ceil(when * TICKS_PER_S)``) and a heap of the ticks that have a
    bucket, so a deadline costs a list append (and a heap push only for a tick with no
    bucket yet), not a push into a heap of every endpoint. The timer is set for the
    earliest deadline of the first bucket; when it fires, every bucket whose deadlines are
    all within :data:`EARLY_S` of now is served whole, each endpoint polled at its own
    deadline. Entries are ``(when, endpoint)``; one whose ``when`` is no longer the
    endpoint's deadline is stale and skipped (and purged when they pile up). A deadline
    set while the timer fires (by an endpoint it woke) waits for the next firing, even
    one already due: an endpoint whose deadline stays due (its clock's rounding, say) is
    then polled once a loop pass, not again and again in one callback that holds the
    interpreter and never lets the loop run."""

    cdef object _loop, _handle
    cdef dict _buckets, _first
    cdef list _ticks, _later
    cdef double _armed
    cdef bint _firing
    cdef Py_ssize_t _entries, _purge_at

    def __init__(self, loop):
        self._loop = loop
        self._buckets = {}  # tick -> [(when, endpoint), ...]
        self._first = {}  # the earliest deadline of each bucket
        self._ticks = []
        self._later = []  # (when, endpoint) set while firing
        self._armed = _INF  # the tick the timer is set for
        self._entries = 0
        self._purge_at = 4096

    cdef int add(self, EndpointCore endpoint, double when) except -1:
        cdef long long tick
        cdef list bucket
        if self._firing:
            self._later.append((when, endpoint))
            return 0
        tick = <long long>ceil(when * C_TICKS_PER_S)
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [(when, endpoint)]
            self._first[tick] = when
            heappush(self._ticks, tick)
            if tick < self._armed:
                self._arm(tick)
        else:
            bucket.append((when, endpoint))
            if when < <double>self._first[tick]:
                self._first[tick] = when
                if tick == self._armed:
                    self._arm(tick)
        self._entries += 1
        if self._entries > self._purge_at:
            self._purge()
        return 0

    cdef int _purge(self) except -1:
        cdef dict buckets = {}
        cdef list live
        cdef tuple e
        for tick, bucket in self._buckets.items():
            live = [e for e in bucket if (<EndpointCore>e[1]).due_at(e[0])]
            if live:
                buckets[tick] = live
        self._buckets = buckets
        self._first = {tick: min([e[0] for e in b]) for tick, b in buckets.items()}
        self._ticks = list(buckets)
        heapify(self._ticks)
        self._entries = sum([len(b) for b in buckets.values()])
        self._purge_at = max(4096, 4 * self._entries)
        self._armed = _INF
        if self._ticks:
            self._arm(self._ticks[0])
        return 0

    cdef int _arm(self, tick) except -1:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = tick
        self._handle = self._loop.call_at(self._first[tick], self._fire)
        return 0

    def _fire(self) -> None:
        cdef double now, last, when
        cdef list bucket
        cdef tuple entry
        cdef EndpointCore endpoint
        self._handle = None
        self._armed = _INF
        self._firing = True
        now = self._loop.time()
        # Buckets whose every deadline is at most one tick from now (with a hair of slack
        # for float seconds: the timer was set for the first bucket's earliest deadline).
        last = now * C_TICKS_PER_S + 1.000001
        try:
            while self._ticks and <double>self._ticks[0] <= last:
                tick = heappop(self._ticks)
                bucket = self._buckets.pop(tick)
                del self._first[tick]
                self._entries -= len(bucket)
                for entry in bucket:
                    when = entry[0]
                    endpoint = <EndpointCore>entry[1]
                    if endpoint.due_at(when):
                        endpoint.timer_set = False
                        endpoint.wake(when if when > now else now)
        finally:
            self._firing = False
            self._armed = -_INF  # (no timer set for each deadline put back: once, below)
            later, self._later = self._later, []
            for entry in later:
                self.add(<EndpointCore>entry[1], entry[0])
            if self._ticks:
                self._arm(self._ticks[0])
            else:
                self._armed = _INF


cdef class EndpointCore:
    """The per-datagram work of :class:`~fastfax.transport.t38.T38Endpoint` (its base
    class, which sets the attributes): the terminal fed what the peer sends and polled at
    its deadlines, what it returns sent."""

    cdef public object terminal, peer, answered, _transport, _sock, _loop, _result
    cdef public CallSocket _fast
    cdef public Deadlines _deadlines
    cdef public long long foreign, rejected, send_errors
    cdef double timer_at
    cdef bint timer_set

    @property
    def _timer_at(self):
        """The deadline the endpoint's timer is set for (loop seconds), or None."""
        return self.timer_at if self.timer_set else None

    @_timer_at.setter
    def _timer_at(self, value):
        self.timer_set = value is not None
        if value is not None:
            self.timer_at = value

    cdef inline bint due_at(self, double when) noexcept:
        return self.timer_set and self.timer_at == when

    def _from_peer(self, data: bytes) -> None:
        """A datagram from the peer (its address already checked)."""
        self.from_peer(data)

    cdef int from_peer(self, data) except -1:
        cdef double now
        if self._result.done():
            return 0
        now = self._loop.time()
        terminal = self.terminal
        terminal.datagram_received(data, now)
        if not terminal.settled or not self.timer_set:
            self.service(now)
        return 0

    def _service(self, now=None) -> None:
        """Poll the terminal (at ``now``, loop seconds; None: the loop's time), send what it
        returns, finish the call when it is done, or set the timer for its next deadline."""
        self.service(self._loop.time() if now is None else now)

    cdef int wake(self, double now) except -1:
        if not self._result.done():
            self.service(now)
        return 0

    cdef int service(self, double now) except -1:
        cdef double w
        terminal = self.terminal
        out = terminal.poll(now)
        if out:
            self.send(out)
        if terminal.done:
            self._finish()
            return 0
        when = terminal.next_deadline
        # Only an earlier deadline is armed: one that moved later (the far end's signal
        # idle limit moves with every datagram) is found when the armed one fires, polls
        # nothing and arms the real one.
        if when is not None:
            w = when
            if not self.timer_set or w < self.timer_at:
                self.timer_at = w
                self.timer_set = True
                self._deadlines.add(self, w)
        return 0

    def _send(self, list datagrams) -> None:
        """Send ``datagrams`` to the peer, in order."""
        self.send(datagrams)

    cdef int send(self, list datagrams) except -1:
        cdef Py_ssize_t sent
        transport, sock, peer = self._transport, self._sock, self.peer
        fast = self._fast
        if transport is None:
            return 0
        if fast is not None and not fast.closed and fast.queued == 0:
            sent = fast.send_c(datagrams)
            if sent >= 0:
                for rest in datagrams[sent:]:  # the kernel's buffer is full: queue the rest
                    transport.sendto(rest, peer)
                return 0
        if transport.is_closing():
            return 0
        if sock is None or transport.get_write_buffer_size():
            for datagram in datagrams:  # asyncio has some queued: keep the order
                transport.sendto(datagram, peer)
            return 0
        send = sock.sendto
        for k, datagram in enumerate(datagrams):
            try:
                send(datagram, peer)
            except (BlockingIOError, InterruptedError):
                for rest in datagrams[k:]:  # the kernel's buffer is full: asyncio queues
                    transport.sendto(rest, peer)
                return 0
            except OSError:
                self.send_errors += 1
        return 0

    def _finish(self) -> None:
        """The call is over: its result is set (once)."""
        self.timer_set = False
        if not self._result.done():
            self._result.set_result(self.terminal.result)
