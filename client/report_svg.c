/* report_svg: the per-client accuracy chart of a report (report.h), as a
 * static SVG file: clients on x sorted by personalized accuracy, accuracy on
 * y, the personalized series as a line with markers, the baseline's accuracy
 * for the same client as markers (so a gap between the two at one x is one
 * client's gain or loss), and each series' sample-weighted accuracy as a
 * dashed line. No script, no external font or stylesheet.
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

/* Plot geometry: data (rank, accuracy) to pixels. */
typedef struct {
    int n;          /* clients */
    double lo;      /* accuracy at the bottom of the plot */
} axes;

static double px_x(const axes *ax, int i)
{
    double w = SVG_W - SVG_L - SVG_R;
    return ax->n > 1 ? SVG_L + w * i / (ax->n - 1) : SVG_L + w / 2;
}

static double px_y(const axes *ax, double acc)
{
    double h = SVG_H - SVG_T - SVG_B;
    return SVG_T + h * (1.0 - (acc - ax->lo) / (1.0 - ax->lo));
}

static void draw_axes(FILE *f, const axes *ax)
{
    /* Horizontal grid and y labels every 0.1 (0.05 when the range is narrow). */
    double step = 1.0 - ax->lo <= 0.3 ? 0.05 : 0.1;
    for (int k = 0; ax->lo + k * step <= 1.0 + 1e-9; k++) {
        double v = ax->lo + k * step, y = px_y(ax, v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                SVG_L, y, SVG_W - SVG_R, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", SVG_L - 6, y + 4, v);
    }
    /* x ticks at client ranks 1..n, at most about ten of them. */
    int every = ax->n <= 10 ? 1 : (ax->n + 9) / 10;
    for (int i = 0; i < ax->n; i += every)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", px_x(ax, i),
                SVG_H - SVG_B + 18, i + 1);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", SVG_L, SVG_T,
            SVG_L, SVG_H - SVG_B);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", SVG_L,
            SVG_H - SVG_B, SVG_W - SVG_R, SVG_H - SVG_B);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">clients, sorted by personalized"
            " accuracy (rank)</text>\n", (SVG_L + SVG_W - SVG_R) / 2, SVG_H - 18);
    fprintf(f, "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">test"
            " accuracy on the client's own split</text>\n", (SVG_T + SVG_H - SVG_B) / 2);
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
    /* Start the axis at the tenth below the lowest point, so high
     * accuracies are not squeezed against the top. */
    axes ax = { n, floor(lo * 10.0 + 1e-9) / 10.0 };
    if (ax.lo > 0.9) ax.lo = 0.9;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\""
            " font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"15\" font-weight=\"bold\">Per-client accuracy,"
            " round %d, %d clients", SVG_L, a->round, n);
    /* The coordinator does not know the partition; only a local run does. */
    if (a->meta.partition[0]) {
        fputs(", partition ", f);
        xml_text(f, a->meta.partition);
    }
    fputs("</text>\n", f);
    draw_axes(f, &ax);
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
