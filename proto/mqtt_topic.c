/*
 * mqtt_topic.c — topic name and filter rules (MQTT 5 section 4.7, 3.1.1 section 4.7) and matching.
 *
 * Matching works level by level on the raw bytes: names and filters were validated when they arrived, so no
 * UTF-8 decoding is needed here, and '/' can never be part of a multi-byte sequence.
 */
#include "mqtt_int.h"

bool
mqtt_topic_name_valid(const uint8_t *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 0xFFFF)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] == '+' || s[i] == '#')
			return false;
	}
	return mqtt_utf8_valid(s, len);
}

bool
mqtt_topic_filter_valid(const uint8_t *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 0xFFFF)
		return false;
	for (i = 0; i < len; i++) {
		bool level_start = i == 0 || s[i - 1] == '/';
		bool level_end = i + 1 == len || s[i + 1] == '/';

		if (s[i] == '#') {
			/* [MQTT-4.7.1-1]: alone in its level and the last character */
			if (!level_start || i + 1 != len)
				return false;
		} else if (s[i] == '+') {
			/* [MQTT-4.7.1-2]: occupies an entire level */
			if (!level_start || !level_end)
				return false;
		}
	}
	return mqtt_utf8_valid(s, len);
}

int
mqtt_share_parse(mqtt_str_t filter, mqtt_str_t *group, mqtt_str_t *inner)
{
	static const char prefix[] = "$share/";
	const size_t plen = sizeof(prefix) - 1;
	const uint8_t *g, *end, *slash;

	if (filter.len < plen || memcmp(filter.p, prefix, plen) != 0)
		return 0;
	g = filter.p + plen;
	end = filter.p + filter.len;
	slash = memchr(g, '/', (size_t)(end - g));
	/* [MQTT-4.8.2-1]: a ShareName of at least one character, followed by '/' and a Topic Filter [MQTT-4.8.2-2]:
	 * the ShareName holds no '/', '+' or '#' */
	if (slash == NULL || slash == g || slash + 1 == end)
		return MQTT_E_TOPIC_FILTER;
	if (memchr(g, '+', (size_t)(slash - g)) != NULL || memchr(g, '#', (size_t)(slash - g)) != NULL)
		return MQTT_E_TOPIC_FILTER;
	group->p = g;
	group->len = (uint32_t)(slash - g);
	inner->p = slash + 1;
	inner->len = (uint32_t)(end - slash - 1);
	return 1;
}

static const uint8_t *
level_end(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *slash;

	if (p == end)
		return end;
	slash = memchr(p, '/', (size_t)(end - p));
	return slash != NULL ? slash : end;
}

bool
mqtt_topic_match(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen)
{
	const uint8_t *f = filter, *fe = filter + flen;
	const uint8_t *t = topic, *te = topic + tlen;
	bool topic_done = false;

	/* [MQTT-4.7.2-1]: "$SYS/..." and friends are for filters that name them, not for "#" or "+/..." */
	if (tlen > 0 && topic[0] == '$' && flen > 0 && (filter[0] == '#' || filter[0] == '+'))
		return false;

	for (;;) {
		const uint8_t *fl = level_end(f, fe), *tl;
		bool f_more, t_more;

		/* '#' also matches the parent level: "sport/#" matches "sport" [MQTT-4.7.1-1 note] */
		if (fl - f == 1 && *f == '#')
			return true;
		if (topic_done)
			return false;
		tl = level_end(t, te);
		if (!(fl - f == 1 && *f == '+')) {
			if (fl - f != tl - t || memcmp(f, t, (size_t)(fl - f)) != 0)
				return false;
		}
		f_more = fl < fe;
		t_more = tl < te;
		if (!f_more)
			return !t_more;
		f = fl + 1;
		if (t_more)
			t = tl + 1;
		else
			topic_done = true;
	}
}
