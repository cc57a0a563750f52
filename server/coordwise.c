/* coordwise: coordinate-wise median and trimmed mean; see rules.h. */
#include "server/rules.h"

#include <stdlib.h>

static int coordwise_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Copies coordinate j of every update into col, sorted ascending. */
static void coordwise_column(const float *u, int k, size_t n, size_t j, double *col)
{
    for (int i = 0; i < k; i++) col[i] = u[(size_t)i * n + j];
    qsort(col, (size_t)k, sizeof *col, coordwise_cmp);
}

void rules_median(const float *u, int k, size_t n, double *col, float *out)
{
    for (size_t j = 0; j < n; j++) {
        coordwise_column(u, k, n, j, col);
        double mid = k % 2 ? col[k / 2] : (col[k / 2 - 1] + col[k / 2]) / 2;
        out[j] = (float)mid;
    }
}

void rules_trimmed(const float *u, int k, size_t n, double beta, double *col, float *out)
{
    /* beta < 0.5 leaves k - 2t >= 1 values; the epsilon keeps 0.2 * 10
     * from becoming 1.999... */
    int t = (int)(beta * k + 1e-9);
    for (size_t j = 0; j < n; j++) {
        coordwise_column(u, k, n, j, col);
        double s = 0;
        for (int i = t; i < k - t; i++) s += col[i];
        out[j] = (float)(s / (k - 2 * t));
    }
}
