/*
 * mqtt_utf8.c — the UTF-8 rules of [MQTT-1.5.4-1..2] (MQTT 5 section 1.5.4, 3.1.1 section 1.5.3).
 *
 * Well-formed means Unicode table 3-7: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF, no truncated sequence. U+0000 is refused too. Control characters and non-characters are only a
 * SHOULD NOT in the spec and are let through: a receiver "MAY" close for them, and we choose not to.
 */
#include "mqtt_int.h"

bool
mqtt_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];

		/* Topics and client ids are nearly always ASCII: keep that path a single compare. */
		if (c < 0x80) {
			if (c == 0)
				return false;
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			if (len - i < 2 || (s[i + 1] & 0xC0) != 0x80)
				return false;
			i += 2;
		} else if (c >= 0xE0 && c <= 0xEF) {
			uint8_t lo = 0x80, hi = 0xBF;

			if (c == 0xE0)
				lo = 0xA0;      /* overlong below U+0800 */
			else if (c == 0xED)
				hi = 0x9F;      /* surrogates */
			if (len - i < 3 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xC0) != 0x80)
				return false;
			i += 3;
		} else if (c >= 0xF0 && c <= 0xF4) {
			uint8_t lo = 0x80, hi = 0xBF;

			if (c == 0xF0)
				lo = 0x90;      /* overlong below U+10000 */
			else if (c == 0xF4)
				hi = 0x8F;      /* above U+10FFFF */
			if (len - i < 4 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xC0) != 0x80
			    || (s[i + 3] & 0xC0) != 0x80)
				return false;
			i += 4;
		} else {
			/* 0x80..0xC1 (stray continuation, overlong 2-byte lead) and 0xF5..0xFF */
			return false;
		}
	}
	return true;
}
