/*
 * bench_conn_tls.c — the TLS layer of a ringmq-bench connection (cfg->tls), between the engine's io_uring
 * (bench_conn.c) and the MQTT side (bench_client.c), changing neither.
 *
 * Received ciphertext goes into the connection's memory BIO (bench_tls.h) and the plaintext SSL_read makes of it
 * to cli_on_data(). The MQTT side keeps appending plaintext to `pend`; the flush encrypts it into the outgoing
 * BIO and sends the ciphertext from `out` like any output, one send in flight per connection. The handshake is
 * one more connection state, CS_TLS, between the TCP connect and the MQTT CONNECT, driven by the same
 * completions. Everything here runs on the engine thread that owns the connection.
 */
#include <stdint.h>

#include "bench_engine.h"

void
eng_tls_fail(bconn_thread_t *t, conn_t *c)
{
	atomic_fetch_add_explicit(&t->prog.tls_errors, 1, memory_order_relaxed);
	atomic_store_explicit(&t->prog.last_tls_err, c->tls->err, memory_order_relaxed);
	atomic_store_explicit(&t->prog.last_tls_verify, c->tls->verify, memory_order_relaxed);
	/* Before CS_READY it is a failed connection (with TLS 1.3 a refused client certificate arrives as an alert
	 * after our side of the handshake is complete, when we already wait for the CONNACK). */
	eng_close(t, c, c->state == CS_READY ? WHY_ERROR : WHY_CONNFAIL);
}

static void
tls_established(bconn_thread_t *t, conn_t *c, int64_t now)
{
	atomic_fetch_add_explicit(c->tls->resumed ? &t->prog.tls_resumed : &t->prog.tls_full, 1,
		memory_order_relaxed);
	if (t->cfg->mode == BENCH_MODE_CONNECT) {
		uint64_t ns = (uint64_t)(now - c->t_begin);

		hist_record(&t->cur.handshake, ns);
		if (in_window(t, now))
			hist_record(&t->window.handshake, ns);
	}
	c->state = CS_CONNACK;
	cli_queue_connect(t, c, now);
}

/* Ciphertext received: handshake, then every record decrypted and handed to the MQTT side. */
void
eng_tls_on_data(bconn_thread_t *t, conn_t *c, const uint8_t *data, size_t len, int64_t now)
{
	btls_t *s = c->tls;
	long n;

	if (c->state == CS_CLOSING || c->state == CS_DOWN || s->ssl == NULL)
		return;
	if (btls_feed(s, data, len) < 0) {
		eng_tls_fail(t, c);
		return;
	}
	if (!s->done) {
		int r = btls_handshake(s);

		if (r < 0) {
			eng_tls_fail(t, c);
			return;
		}
		if (r == 0) {
			if (btls_pending(s) > 0)
				eng_mark_dirty(t, c);
			return;
		}
		tls_established(t, c, now);
	}
	while ((n = btls_read(s, t->plain, PLAIN_SIZE)) > 0) {
		cli_on_data(t, c, t->plain, (size_t)n, now);
		if (c->state == CS_CLOSING || c->state == CS_DOWN)
			return;
	}
	if (n < 0) {
		if (s->closed)
			eng_close(t, c, eng_why_eof(c));
		else
			eng_tls_fail(t, c);
		return;
	}
	if (btls_pending(s) > 0)
		eng_mark_dirty(t, c); /* e.g. a key update answered */
}

/* Encrypt what the MQTT side queued (and our close_notify after a DISCONNECT) and send all pending ciphertext.
 * While a send is in flight everything waits: its completion marks the connection dirty again. */
void
eng_tls_flush(bconn_thread_t *t, conn_t *c, uint32_t ci)
{
	btls_t *s = c->tls;
	size_t n;

	if (c->send_busy || s->ssl == NULL)
		return;
	if (s->done && c->pend.len > 0) {
		if (btls_write(s, c->pend.p, c->pend.len) < 0) {
			eng_tls_fail(t, c);
			return;
		}
		c->pend.len = c->pend.off = 0;
	}
	if (c->close_after_send)
		btls_close_notify(s);
	n = btls_pending(s);
	if (n == 0)
		return;
	if (n > UINT32_MAX / 2 || cli_obuf_reserve(&c->out, (uint32_t)n) == NULL) {
		eng_close(t, c, WHY_ERROR);
		return;
	}
	c->out.len = (uint32_t)btls_take(s, c->out.p, n);
	c->out.off = 0;
	eng_submit_send(t, c, ci);
}
