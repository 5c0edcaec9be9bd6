/* record.c — stored records and the store's replies, encoded and checked (see record.h). */
#include "record.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

size_t record_blob_size(const msg_t *m)
{
	return sizeof(record_blob_hdr_t) + msg_data_len(m);
}

void record_blob_encode(uint8_t *out, const msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid,
	int64_t expire_unix_ms)
{
	record_blob_hdr_t h;

	memset(&h, 0, sizeof(h));
	h.magic = RECORD_BLOB_MAGIC;
	h.qos = qos;
	h.retain = retain;
	h.flags = m->flags;
	h.pfi = m->pfi;
	h.subid = subid;
	h.user_len = m->user_len;
	h.payload_len = m->payload_len;
	h.topic_len = m->topic_len;
	h.ct_len = m->ct_len;
	h.rt_len = m->rt_len;
	h.cd_len = m->cd_len;
	h.expire_unix_ms = expire_unix_ms;
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), m->data, msg_data_len(m));
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* A varint of at most 10 bytes within [*p, end), or false. */
static bool varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

static uint64_t expiry_field(int64_t expire_unix_ms)
{
	return expire_unix_ms > 0 ? (uint64_t)expire_unix_ms : 0;
}

size_t record_qblob_size(const msg_t *m, uint32_t subid, int64_t expire_unix_ms)
{
	return 3 + varint_size(subid) + varint_size(m->topic_len) + varint_size(m->ct_len) + varint_size(m->rt_len) +
		varint_size(m->cd_len) + varint_size(m->user_len) + varint_size(m->payload_len) +
		varint_size(expiry_field(expire_unix_ms)) + msg_data_len(m);
}

void record_qblob_encode(uint8_t *out, const msg_t *m, uint8_t qos, uint8_t retain, uint32_t subid,
	int64_t expire_unix_ms)
{
	uint8_t *p = out;

	*p++ = RECORD_QBLOB_MARK;
	*p++ = (uint8_t)((qos & 3) | (retain ? 4 : 0) | (m->flags & MSG_HAS_PFI ? 8 : 0) |
		(m->flags & MSG_HAS_EXPIRY ? 16 : 0));
	*p++ = m->pfi;
	p = varint_put(p, subid);
	p = varint_put(p, m->topic_len);
	p = varint_put(p, m->ct_len);
	p = varint_put(p, m->rt_len);
	p = varint_put(p, m->cd_len);
	p = varint_put(p, m->user_len);
	p = varint_put(p, m->payload_len);
	p = varint_put(p, expiry_field(expire_unix_ms));
	memcpy(p, m->data, msg_data_len(m));
}

/* The compact layout read into the fixed header's fields (false: damaged). *data_off: where the data starts. */
static bool qblob_header(const uint8_t *p, size_t len, record_blob_hdr_t *h, size_t *data_off)
{
	const uint8_t *q = p + 3, *end = p + len;
	uint64_t v[8];

	if (len < 3 || p[0] != RECORD_QBLOB_MARK || (p[1] & ~31))
		return false;
	for (int i = 0; i < 8; i++) {
		if (!varint_get(&q, end, &v[i]))
			return false;
	}
	/* Every length within its field in msg_t, the expiry within int64: a damaged header never wraps. */
	if (v[0] > UINT32_MAX || v[1] > UINT16_MAX || v[2] > UINT16_MAX || v[3] > UINT16_MAX || v[4] > UINT16_MAX ||
	    v[5] > UINT32_MAX || v[6] > UINT32_MAX || v[7] > INT64_MAX)
		return false;
	memset(h, 0, sizeof(*h));
	h->magic = RECORD_BLOB_MAGIC;
	h->qos = p[1] & 3;
	h->retain = (p[1] >> 2) & 1;
	h->flags = (uint8_t)((p[1] & 8 ? MSG_HAS_PFI : 0) | (p[1] & 16 ? MSG_HAS_EXPIRY : 0));
	h->pfi = p[2];
	h->subid = (uint32_t)v[0];
	h->topic_len = (uint16_t)v[1];
	h->ct_len = (uint16_t)v[2];
	h->rt_len = (uint16_t)v[3];
	h->cd_len = (uint16_t)v[4];
	h->user_len = (uint32_t)v[5];
	h->payload_len = (uint32_t)v[6];
	h->expire_unix_ms = (int64_t)v[7];
	*data_off = (size_t)(q - p);
	return true;
}

msg_t *record_blob_decode(const void *p, size_t len, uint64_t now_unix, uint64_t now_mono, uint8_t *qos,
	uint8_t *retain, uint32_t *subid, int *err)
{
	record_blob_hdr_t h;
	size_t off = sizeof(h);
	msg_t hdr, *m;

	*err = -EINVAL;
	if (len >= 1 && *(const uint8_t *)p == RECORD_QBLOB_MARK) {
		if (!qblob_header(p, len, &h, &off))
			return NULL;
	} else if (len >= sizeof(h)) {
		memcpy(&h, p, sizeof(h));
	} else {
		return NULL;
	}
	memset(&hdr, 0, sizeof(hdr));
	hdr.topic_len = h.topic_len;
	hdr.ct_len = h.ct_len;
	hdr.rt_len = h.rt_len;
	hdr.cd_len = h.cd_len;
	hdr.user_len = h.user_len;
	hdr.payload_len = h.payload_len;
	/* Sum in 64 bits: a damaged header must not wrap around to a plausible length. */
	if (h.magic != RECORD_BLOB_MAGIC || h.qos > 2 || !h.topic_len ||
	    (uint64_t)off + h.topic_len + h.ct_len + h.rt_len + h.cd_len + (uint64_t)h.user_len +
	    h.payload_len != len)
		return NULL;
	if (h.expire_unix_ms <= (int64_t)now_unix) {
		*err = -ETIME;
		return NULL;
	}
	hdr.qos = h.qos;
	hdr.retain = h.retain ? 1 : 0;
	hdr.flags = h.flags & (MSG_HAS_PFI | MSG_HAS_EXPIRY);
	hdr.pfi = h.pfi;
	hdr.expire_at_ms = now_mono + (uint64_t)(h.expire_unix_ms - (int64_t)now_unix);
	m = msg_create_raw(&hdr, (const uint8_t *)p + off);
	if (!m) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = 0;
	*qos = h.qos;
	*retain = hdr.retain;
	*subid = h.subid;
	return m;
}

static bool is_str(const redisReply *r)
{
	return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

/* An unsigned decimal string reply, entirely digits. */
static bool to_u64(const redisReply *r, uint64_t *v)
{
	char buf[24];
	char *end;

	if (!is_str(r) || r->len == 0 || r->len >= sizeof(buf))
		return false;
	memcpy(buf, r->str, r->len);
	buf[r->len] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return false;
	errno = 0;
	*v = strtoull(buf, &end, 10);
	return errno == 0 && *end == '\0';
}

/* A flat array of string pairs (HGETALL), or an empty one. */
static bool is_pairs(const redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
		return false;
	for (size_t i = 0; i < r->elements; i++) {
		if (!is_str(r->element[i]))
			return false;
	}
	return true;
}

static int cmp_entry(const void *a, const void *b)
{
	const sess_entry_t *x = a, *y = b;

	return x->qseq < y->qseq ? -1 : x->qseq > y->qseq;
}

static int push_seq(uint64_t **arr, size_t *n, uint64_t v)
{
	uint64_t *p = realloc(*arr, (*n + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	p[(*n)++] = v;
	*arr = p;
	return 0;
}

int record_decode_load(const redisReply *r, uint64_t now_unix, uint64_t now_mono, record_load_t *out)
{
	const redisReply *q, *pids, *rx;
	size_t pairs;

	memset(out, 0, sizeof(*out));
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
		return -EPROTO;
	q = r->element[1];
	pids = r->element[2];
	rx = r->element[3];
	if (!is_pairs(r->element[0]) || !is_pairs(q) || !is_pairs(pids) || !rx || rx->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	pairs = q->elements / 2;
	if (pairs && !(out->e = calloc(pairs, sizeof(*out->e))))
		return -ENOMEM;
	for (size_t i = 0; i < pairs; i++) {
		const redisReply *blob = q->element[2 * i + 1];
		sess_entry_t *x = &out->e[out->n];
		uint64_t qseq;
		int err;

		if (!to_u64(q->element[2 * i], &qseq) || !qseq)
			continue; /* not even a sequence number to quarantine it under: leave it for an operator */
		x->m = record_blob_decode(blob->str, blob->len, now_unix, now_mono, &x->qos, &x->retain, &x->subid,
			&err);
		if (err == -ENOMEM) {
			record_load_finish(out);
			return -ENOMEM;
		}
		if (!x->m) {
			if (push_seq(err == -ETIME ? &out->expired : &out->damaged,
			    err == -ETIME ? &out->n_expired : &out->n_damaged, qseq) < 0) {
				record_load_finish(out);
				return -ENOMEM;
			}
			continue;
		}
		x->qseq = qseq;
		out->n++;
	}
	if (out->n > 1)
		qsort(out->e, out->n, sizeof(*out->e), cmp_entry);
	for (size_t i = 0; i + 1 < pids->elements; i += 2) {
		const redisReply *v = pids->element[i + 1];
		unsigned pid = 0, state = 0;
		char buf[32];
		uint64_t qseq;
		sess_entry_t key, *x;

		if (!to_u64(pids->element[i], &qseq) || v->len >= sizeof(buf))
			continue;
		memcpy(buf, v->str, v->len);
		buf[v->len] = '\0';
		if (sscanf(buf, "%u,%u", &pid, &state) != 2 || !pid || pid > 65535 || state < 1 || state > 3)
			continue;
		key.qseq = qseq;
		x = out->n ? bsearch(&key, out->e, out->n, sizeof(*out->e), cmp_entry) : NULL;
		if (x) {
			x->pid = (uint16_t)pid;
			x->state = (uint8_t)state;
		}
	}
	if (rx->elements && !(out->rx = calloc(rx->elements, sizeof(*out->rx)))) {
		record_load_finish(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rx->elements; i++) {
		uint64_t pid;

		if (to_u64(rx->element[i], &pid) && pid && pid <= 65535)
			out->rx[out->nrx++] = (uint16_t)pid;
	}
	return 0;
}

void record_load_finish(record_load_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		msg_unref(l->e[i].m);
	free(l->e);
	free(l->rx);
	free(l->expired);
	free(l->damaged);
	memset(l, 0, sizeof(*l));
}

static bool meta_num(const redisReply *meta, const char *field, uint64_t *v)
{
	size_t flen = strlen(field);

	for (size_t i = 0; i + 1 < meta->elements; i += 2) {
		const redisReply *k = meta->element[i];

		if (k->len == flen && memcmp(k->str, field, flen) == 0)
			return to_u64(meta->element[i + 1], v);
	}
	return false;
}

int record_decode_sess(const redisReply *x, record_sess_t *out)
{
	const redisReply *meta;
	uint64_t v;

	memset(out, 0, sizeof(*out));
	if (!x || x->type != REDIS_REPLY_ARRAY || x->elements != 3 || !is_str(x->element[0]) ||
	    !x->element[0]->len || x->element[0]->len > 65535 || !is_pairs(x->element[1]) ||
	    !is_pairs(x->element[2]))
		return -EPROTO;
	meta = x->element[1];
	out->id = x->element[0]->str;
	out->id_len = x->element[0]->len;
	out->version = MQTT_V311;
	if (meta_num(meta, "v", &v)) {
		if (v != MQTT_V31 && v != MQTT_V311 && v != MQTT_V5)
			return -EPROTO;
		out->version = (uint8_t)v;
	}
	out->expiry_s = UINT32_MAX;
	if (meta_num(meta, "e", &v))
		out->expiry_s = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	if (meta_num(meta, "h", &v))
		out->next_qseq = v;
	if (meta_num(meta, "x", &v))
		out->expire_unix_ms = v;
	out->subs = x->element[2];
	return 0;
}

/* "qos,no_local,rap,retain_handling,subid" without sscanf (a restore parses a million of these). */
static bool parse_opts(const char *p, size_t len, unsigned v[5])
{
	size_t i = 0;

	for (int k = 0; k < 5; k++) {
		uint64_t n = 0;
		size_t start = i;

		while (i < len && p[i] >= '0' && p[i] <= '9' && i - start < 10)
			n = n * 10 + (uint64_t)(p[i++] - '0');
		if (i == start || n > UINT32_MAX)
			return false;
		v[k] = (unsigned)n;
		if (k < 4 && (i >= len || p[i++] != ','))
			return false;
	}
	return i == len;
}

static int decode_sub(const char *fp, size_t flen, const char *op, size_t olen, mqtt_str_t *filter,
	mqtt_subopts_t *opts, uint32_t *subid)
{
	unsigned v[5];
	bool shared;

	if (flen > 65535)
		return -EPROTO;
	*filter = (mqtt_str_t){ (const uint8_t *)fp, (uint32_t)flen };
	if (!parse_opts(op, olen, v) || v[0] > 2 || v[1] > 1 || v[2] > 1 || v[3] > 2 || v[4] > 268435455 ||
	    mqtt_filter_check(filter, &shared) != MQTT_OK)
		return -EPROTO;
	*opts = (mqtt_subopts_t){ .qos = (uint8_t)v[0], .no_local = v[1], .retain_as_published = v[2],
		.retain_handling = (uint8_t)v[3] };
	*subid = v[4];
	return 0;
}

int record_decode_sub(const record_sess_t *rs, size_t i, mqtt_str_t *filter, mqtt_subopts_t *opts,
	uint32_t *subid)
{
	const redisReply *f, *o;

	if (2 * i + 1 >= rs->subs->elements)
		return -ENOENT;
	f = rs->subs->element[2 * i];
	o = rs->subs->element[2 * i + 1];
	return decode_sub(f->str, f->len, o->str, o->len, filter, opts, subid);
}

/* The field at *pos of a NUL-separated string, up to the next NUL or the end; *pos moves past it. */
static bool next_field(const char *p, size_t len, size_t *pos, const char **f, size_t *flen)
{
	const char *nul;

	if (*pos > len)
		return false;
	*f = p + *pos;
	nul = memchr(*f, '\0', len - *pos);
	*flen = nul ? (size_t)(nul - *f) : len - *pos;
	*pos += *flen + 1; /* past the end when it was the last: then nothing follows */
	return true;
}

/* An optional unsigned decimal field: false when present but not a number. */
static bool field_num(const char *f, size_t len, bool *present, uint64_t *v)
{
	*present = len > 0;
	*v = 0;
	if (!len)
		return true;
	if (len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (f[i] < '0' || f[i] > '9' || *v > (UINT64_MAX - 9) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(f[i] - '0');
	}
	return true;
}

int record_decode_packed(const char *p, size_t len, record_sess_t *out)
{
	const char *f[5];
	size_t fl[5], pos = 0;
	bool present[4];
	uint64_t v[4];

	memset(out, 0, sizeof(*out));
	if (!p)
		return -EPROTO;
	for (int i = 0; i < 5; i++) {
		if (!next_field(p, len, &pos, &f[i], &fl[i]))
			return -EPROTO;
	}
	if (!fl[0] || fl[0] > 65535)
		return -EPROTO;
	for (int i = 0; i < 4; i++) {
		if (!field_num(f[i + 1], fl[i + 1], &present[i], &v[i]))
			return -EPROTO;
	}
	out->id = f[0];
	out->id_len = fl[0];
	out->version = MQTT_V311;
	if (present[0]) {
		if (v[0] != MQTT_V31 && v[0] != MQTT_V311 && v[0] != MQTT_V5)
			return -EPROTO;
		out->version = (uint8_t)v[0];
	}
	out->expiry_s = !present[1] || v[1] > UINT32_MAX ? UINT32_MAX : (uint32_t)v[1];
	out->next_qseq = v[2];
	out->expire_unix_ms = v[3];
	out->packed = pos <= len ? p + pos : p + len;
	out->packed_len = pos <= len ? len - pos : 0;
	return 0;
}

int record_next_sub(record_sess_t *rs, size_t *pos, mqtt_str_t *filter, mqtt_subopts_t *opts, uint32_t *subid)
{
	const char *f, *o;
	size_t fl, ol;

	if (rs->subs)
		return record_decode_sub(rs, (*pos)++, filter, opts, subid);
	if (!rs->packed || *pos >= rs->packed_len)
		return -ENOENT;
	if (!next_field(rs->packed, rs->packed_len, pos, &f, &fl))
		return -ENOENT;
	if (!next_field(rs->packed, rs->packed_len, pos, &o, &ol))
		return -EPROTO; /* a filter without its options: the record ends damaged */
	return decode_sub(f, fl, o, ol, filter, opts, subid);
}
