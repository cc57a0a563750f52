/* report_svg: the charts of report.h as static SVG files. The per-client
 * accuracy chart of a report: clients on x sorted by personalized accuracy,
 * accuracy on y, the personalized series as a line with markers, the
 * baseline's accuracy for the same client as markers (so a gap between the
 * two at one x is one client's gain or loss), and each series' sample-
 * weighted accuracy as a dashed line. The x-y chart: accuracy against any x
 * (linear or log), one line per series. Both share the canvas, the accuracy
 * axis and the frame. No script, no external font or stylesheet.
 */
#include "client/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    SVG_W = 820, SVG_H = 500,          /* canvas, px */
    SVG_L = 70, SVG_R = 30,            /* plot margins, px */
    SVG_T = 70, SVG_B = 60,
};

#define COLOR_OWN "#1f6fb4"
#define COLOR_BASE "#e3721a"

/* Series colours of the x-y chart, the report's two first. */
static const char *const series_color[REPORT_XY_MAX_SERIES] = {
    COLOR_OWN, COLOR_BASE, "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
};

typedef struct {
    double acc;     /* personalized */
    double base;    /* baseline for the same client, NAN if none */
} pair;

static int cmp_pair(const void *a, const void *b)
{
    double x = ((const pair *)a)->acc, y = ((const pair *)b)->acc;
    return (x > y) - (x < y);
}

/* Text content or attribute value with the XML specials escaped. */
static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20) fputc(*s, f);
        }
    }
}

/* Plot geometry: data (x, accuracy) to pixels. */
typedef struct {
    double x0, x1;  /* x at the left and right ends (equal: one point, centred) */
    int logx;       /* x on a log scale */
    double lo;      /* accuracy at the bottom of the plot */
} axes;

static double px_x(const axes *ax, double x)
{
    double w = SVG_W - SVG_L - SVG_R;
    double a = ax->logx ? log10(ax->x0) : ax->x0, b = ax->logx ? log10(ax->x1) : ax->x1;
    double v = ax->logx ? log10(x) : x;
    return b > a ? SVG_L + w * (v - a) / (b - a) : SVG_L + w / 2;
}

/* The accuracy at the bottom of the plot: the tenth below the lowest point,
 * so high accuracies are not squeezed against the top. */
static double axis_lo(double lowest)
{
    double lo = floor(lowest * 10.0 + 1e-9) / 10.0;
    return lo > 0.9 ? 0.9 : lo;
}

static double px_y(const axes *ax, double acc)
{
    double h = SVG_H - SVG_T - SVG_B;
    return SVG_T + h * (1.0 - (acc - ax->lo) / (1.0 - ax->lo));
}

/* The XML prologue, the canvas and its white background. */
static void svg_begin(FILE *f)
{
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\""
            " font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", SVG_W, SVG_H, SVG_W, SVG_H);
}

/* The accuracy grid with its labels, both axis lines and both axis titles;
 * the x ticks are the caller's. */
static void draw_frame(FILE *f, const axes *ax, const char *xlabel, const char *ylabel)
{
    /* Horizontal grid and y labels every 0.1 (0.05 when the range is narrow). */
    double step = 1.0 - ax->lo <= 0.3 ? 0.05 : 0.1;
    for (int k = 0; ax->lo + k * step <= 1.0 + 1e-9; k++) {
        double v = ax->lo + k * step, y = px_y(ax, v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                SVG_L, y, SVG_W - SVG_R, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", SVG_L - 6, y + 4, v);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", SVG_L, SVG_T,
            SVG_L, SVG_H - SVG_B);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", SVG_L,
            SVG_H - SVG_B, SVG_W - SVG_R, SVG_H - SVG_B);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (SVG_L + SVG_W - SVG_R) / 2,
            SVG_H - 18);
    xml_text(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">",
            (SVG_T + SVG_H - SVG_B) / 2);
    xml_text(f, ylabel);
    fputs("</text>\n", f);
}

/* One x tick label at data x, with `digits` significant digits. */
static void draw_x_tick(FILE *f, const axes *ax, double x, int digits)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.*g</text>\n", px_x(ax, x),
            SVG_H - SVG_B + 18, digits, x);
}

static void draw_weighted(FILE *f, const axes *ax, double w, const char *color)
{
    if (isnan(w)) return;
    double y = px_y(ax, w);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\""
            " stroke-dasharray=\"6 4\"/>\n", SVG_L, y, SVG_W - SVG_R, y, color);
}

/* One legend entry at row k: a marker and its label. */
static void draw_legend(FILE *f, int k, const char *color, int square, const char *label,
                        const char *groups, double weighted)
{
    int x = SVG_L + 10, y = 38 + 18 * k;
    if (square)
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"8\" height=\"8\" fill=\"%s\"/>\n", x - 4, y - 8,
                color);
    else
        fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/>\n", x, y - 4, color);
    fprintf(f, "<text x=\"%d\" y=\"%d\">%s (private: ", x + 12, y, label);
    xml_text(f, groups[0] ? groups : "unknown");
    fprintf(f, "), weighted accuracy %.4f (dashed)</text>\n", weighted);
}

int report_write_svg(FILE *f, const report *r)
{
    const report_run *a = &r->run;
    int n = a->n;
    pair *p = malloc(((size_t)n + 1) * sizeof *p);   /* (n) sorted by acc */
    if (!p) return -ENOMEM;
    double lo = 1.0;
    for (int i = 0; i < n; i++) {
        p[i].acc = a->c[i].accuracy;
        p[i].base = r->has_base ? r->base_acc[i] : NAN;
        if (p[i].acc < lo) lo = p[i].acc;
        if (!isnan(p[i].base) && p[i].base < lo) lo = p[i].base;
    }
    qsort(p, (size_t)n, sizeof *p, cmp_pair);
    axes ax = { 0, n - 1, 0, axis_lo(lo) };

    svg_begin(f);
    fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"15\" font-weight=\"bold\">Per-client accuracy,"
            " round %d, %d clients", SVG_L, a->round, n);
    /* The coordinator does not know the partition; only a local run does. */
    if (a->meta.partition[0]) {
        fputs(", partition ", f);
        xml_text(f, a->meta.partition);
    }
    fputs("</text>\n", f);
    /* x ticks at client ranks 1..n, at most about ten of them. */
    int every = n <= 10 ? 1 : (n + 9) / 10;
    for (int i = 0; i < n; i += every)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", px_x(&ax, i),
                SVG_H - SVG_B + 18, i + 1);
    draw_frame(f, &ax, "clients, sorted by personalized accuracy (rank)",
               "test accuracy on the client's own split");
    draw_legend(f, 0, COLOR_OWN, 0, "personalized", a->meta.private_groups, r->s.weighted);
    if (r->has_base)
        draw_legend(f, 1, COLOR_BASE, 1,
                    !strcmp(r->base.meta.kind, "local") ? "baseline, local only" : "baseline",
                    r->base.meta.private_groups, r->bs.weighted);

    /* Markers shrink as clients multiply, so 1000 of them stay legible. */
    double mr = n <= 100 ? 3.5 : n <= 1000 ? 2.0 : 1.0;
    if (r->has_base) {
        draw_weighted(f, &ax, r->bs.weighted, COLOR_BASE);
        for (int i = 0; i < n; i++)
            if (!isnan(p[i].base))
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
                        px_x(&ax, i) - mr, px_y(&ax, p[i].base) - mr, 2 * mr, 2 * mr, COLOR_BASE);
    }
    draw_weighted(f, &ax, r->s.weighted, COLOR_OWN);
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", COLOR_OWN);
    for (int i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", px_x(&ax, i), px_y(&ax, p[i].acc));
    fputs("\"/>\n", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"/>\n", px_x(&ax, i),
                px_y(&ax, p[i].acc), mr, COLOR_OWN);
    fputs("</svg>\n", f);
    free(p);
    return ferror(f) ? -EIO : 0;
}

static int cmp_point_x(const void *a, const void *b)
{
    double x = ((const report_point_xy *)a)->x, y = ((const report_point_xy *)b)->x;
    return (x > y) - (x < y);
}

/* Up to this many x ticks: at every distinct x when they are no more,
 * else evenly spread over the axis. */
#define SVG_MAX_TICKS 12

int report_write_xy_svg(FILE *f, const report_xy *c)
{
    axes ax = { INFINITY, -INFINITY, c->logx, 0 };
    double lowest = 1.0, ticks[SVG_MAX_TICKS];
    int nticks = 0, points = 0;
    for (int i = 0; i < c->nseries; i++)
        for (int k = 0; k < c->s[i].n; k++) {
            const report_point_xy *p = &c->s[i].p[k];
            ax.x0 = fmin(ax.x0, p->x);
            ax.x1 = fmax(ax.x1, p->x);
            lowest = fmin(lowest, p->y);
            points++;
            int seen = 0;
            for (int t = 0; t < nticks; t++) seen |= ticks[t] == p->x;
            if (!seen && nticks <= SVG_MAX_TICKS - 1) ticks[nticks++] = p->x;
            else if (!seen) nticks = SVG_MAX_TICKS + 1;   /* too many: spread instead */
        }
    if (points == 0) return -EINVAL;
    ax.lo = axis_lo(lowest);
    /* A little room at both ends so the outer points and labels show. */
    const double pad = 0.04 * (c->logx ? log10(ax.x1 / ax.x0) : ax.x1 - ax.x0);
    if (pad > 0) {
        ax.x0 = c->logx ? ax.x0 / pow(10, pad) : ax.x0 - pad;
        ax.x1 = c->logx ? ax.x1 * pow(10, pad) : ax.x1 + pad;
    }

    svg_begin(f);
    fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"15\" font-weight=\"bold\">", SVG_L);
    xml_text(f, c->title ? c->title : "");
    fputs("</text>\n", f);
    if (nticks <= SVG_MAX_TICKS) {
        for (int t = 0; t < nticks; t++) draw_x_tick(f, &ax, ticks[t], 6);
    } else {
        for (int t = 0; t <= 5; t++) {
            double x = c->logx ? ax.x0 * pow(ax.x1 / ax.x0, t / 5.0) : ax.x0 + (ax.x1 - ax.x0) * t / 5.0;
            draw_x_tick(f, &ax, x, 3);
        }
    }
    draw_frame(f, &ax, c->xlabel ? c->xlabel : "", c->ylabel ? c->ylabel : "");

    int lx = SVG_L + 10, ly = 40;   /* the next legend entry */
    for (int i = 0; i < c->nseries; i++) {
        const report_series *s = &c->s[i];
        const char *color = series_color[i];
        report_point_xy *p = malloc(((size_t)s->n + 1) * sizeof *p);   /* (n) ascending x */
        if (!p) return -ENOMEM;
        memcpy(p, s->p, (size_t)s->n * sizeof *p);
        qsort(p, (size_t)s->n, sizeof *p, cmp_point_x);
        /* The legend runs along the top, wrapping to a second row; a
         * character is taken as 7 px wide. */
        const int w = 30 + 7 * (int)strlen(s->name);
        if (lx + w > SVG_W - SVG_R && lx > SVG_L + 10) {
            lx = SVG_L + 10;
            ly += 16;
        }
        fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/>\n<text x=\"%d\" y=\"%d\">",
                lx, ly - 4, color, lx + 12, ly);
        xml_text(f, s->name);
        fputs("</text>\n", f);
        lx += w;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
        for (int k = 0; k < s->n; k++) fprintf(f, "%.1f,%.1f ", px_x(&ax, p[k].x), px_y(&ax, p[k].y));
        fputs("\"/>\n", f);
        for (int k = 0; k < s->n; k++) {
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", px_x(&ax, p[k].x),
                    px_y(&ax, p[k].y), color);
            if (!p[k].label[0]) continue;
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", px_x(&ax, p[k].x),
                    px_y(&ax, p[k].y) - 8);
            xml_text(f, p[k].label);
            fputs("</text>\n", f);
        }
        free(p);
    }
    fputs("</svg>\n", f);
    return ferror(f) ? -EIO : 0;
}
