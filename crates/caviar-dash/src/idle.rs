//! Connections that go quiet are closed: an idle keep-alive connection, a request sent half
//! way (slowloris), a client that stops reading its response. Each costs the server a task and
//! a socket; on a dashboard that listens beyond loopback, unbounded ones are a denial of
//! service.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// A listener whose connections close after `idle` without a byte either way, or after `age`
/// whatever they do.
pub(crate) struct QuietListener {
    pub inner: TcpListener,
    pub idle: Duration,
    pub age: Duration,
}

impl axum::serve::Listener for QuietListener {
    type Io = QuietStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let now = Instant::now();
        let stream = QuietStream {
            inner: io,
            idle: self.idle,
            idle_deadline: Box::pin(tokio::time::sleep_until(now + self.idle)),
            age_deadline: Box::pin(tokio::time::sleep_until(now + self.age)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that fails with `TimedOut` once it has been quiet (or open) too long.
pub(crate) struct QuietStream {
    inner: TcpStream,
    idle: Duration,
    idle_deadline: Pin<Box<Sleep>>,
    age_deadline: Pin<Box<Sleep>>,
}

impl QuietStream {
    fn progressed(&mut self) {
        let next = Instant::now() + self.idle;
        self.idle_deadline.as_mut().reset(next);
    }

    /// `TimedOut` if a deadline passed (and registers the waker for both otherwise).
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let idle = self.idle_deadline.as_mut().poll(cx).is_ready();
        let old = self.age_deadline.as_mut().poll(cx).is_ready();
        (idle || old).then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                if idle {
                    "connection idle too long"
                } else {
                    "connection open too long"
                },
            )
        })
    }
}

impl AsyncRead for QuietStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for QuietStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
