/* SPDX-License-Identifier: GPL-2.0-or-later
 *
 * x264 reports through a printf-style callback taking a va_list, which stable
 * Rust cannot receive portably (va_list is a pointer on x86_64, a struct on
 * ARM and AArch64). This shim formats the message in C and hands the finished
 * line to a Rust function pointer passed as x264's p_log_private.
 */
#include <stdarg.h>
#include <stdio.h>

typedef void (*edgestream_log_line_fn)(int level, const char *line);

static void edgestream_x264_log(void *priv, int level, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    if (priv)
        ((edgestream_log_line_fn)priv)(level, line);
}

/* The callback, typed as x264_param_t.pf_log expects. */
void *edgestream_x264_log_callback(void)
{
    return (void *)edgestream_x264_log;
}
