/* krum: Krum and Multi-Krum; see rules.h. */
#include "server/rules.h"

#include <stdlib.h>

static int krum_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void rules_krum(const float *u, int k, size_t n, int f, int m, double *dist, double *score,
                int *pick, float *out)
{
    /* Pairwise squared distances, each computed once. */
    for (int a = 0; a < k; a++) {
        dist[(size_t)a * k + a] = 0;
        for (int b = a + 1; b < k; b++) {
            const float *x = u + (size_t)a * n, *y = u + (size_t)b * n;
            double d = 0;
            for (size_t j = 0; j < n; j++) {
                double e = (double)x[j] - (double)y[j];
                d += e * e;
            }
            dist[(size_t)a * k + b] = dist[(size_t)b * k + a] = d;
        }
    }
    int near = k - f - 2;
    if (near < 1) near = 1;
    if (near > k - 1) near = k - 1;
    /* The score sorts a's row in place: the row is not needed afterwards
     * (the diagonal 0 sorts first and is skipped). */
    for (int a = 0; a < k; a++) {
        double *row = dist + (size_t)a * k;
        row[a] = -1;
        qsort(row, (size_t)k, sizeof *row, krum_cmp);
        double s = 0;
        for (int i = 1; i <= near; i++) s += row[i];
        score[a] = s;
    }
    /* Selection of the m lowest scores, lower index first on ties. */
    for (int i = 0; i < k; i++) pick[i] = i;
    for (int i = 0; i < m; i++) {
        int best = i;
        for (int j = i + 1; j < k; j++) {
            double sj = score[pick[j]], sb = score[pick[best]];
            if (sj < sb || (sj == sb && pick[j] < pick[best])) best = j;
        }
        int tmp = pick[i];
        pick[i] = pick[best];
        pick[best] = tmp;
    }
    for (size_t j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < m; i++) s += u[(size_t)pick[i] * n + j];
        out[j] = (float)(s / m);
    }
}
