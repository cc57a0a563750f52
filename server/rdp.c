/* rdp: the RDP accountant of the sampled Gaussian mechanism; see rdp.h. */
#include "server/rdp.h"

#include <math.h>

/* log(exp(x) + exp(y)) without overflow. */
static double rdp_log_add(double x, double y)
{
    double a = x < y ? x : y, b = x < y ? y : x;
    if (a == -INFINITY) return b;
    return log1p(exp(a - b)) + b;
}

void rdp_init(rdp_acct *a)
{
    for (int i = 0; i < RDP_N_ORDERS; i++) a->rdp[i] = 0;
}

double rdp_sgm(double q, double z, int order)
{
    if (q <= 0) return 0;
    if (!(z > 0)) return INFINITY;
    if (q >= 1) return order / (2 * z * z);
    double log_a = -INFINITY, lq = log(q), l1q = log1p(-q);
    double lg = lgamma(order + 1.0);
    for (int i = 0; i <= order; i++) {
        double log_comb = lg - lgamma(i + 1.0) - lgamma(order - i + 1.0);
        double s = log_comb + i * lq + (order - i) * l1q + ((double)i * i - i) / (2 * z * z);
        log_a = rdp_log_add(log_a, s);
    }
    return log_a / (order - 1);
}

void rdp_compose(rdp_acct *a, double q, double z, int steps)
{
    for (int i = 0; i < RDP_N_ORDERS; i++) a->rdp[i] += steps * rdp_sgm(q, z, i + 2);
}

double rdp_epsilon_of(const double *rdp, int n, double delta, int *order)
{
    double best = INFINITY;
    int best_order = 2;
    for (int i = 0; i < n; i++) {
        double a = i + 2, r = rdp[i], eps;
        if (delta * delta + expm1(-r) >= 0) eps = 0;   /* the KL bound already gives delta */
        else eps = r + log1p(-1 / a) - log(delta * a) / (a - 1);
        if (eps < best) {
            best = eps;
            best_order = i + 2;
        }
    }
    if (order) *order = best_order;
    return best > 0 ? best : 0;
}

double rdp_epsilon(const rdp_acct *a, double delta, int *order)
{
    return rdp_epsilon_of(a->rdp, RDP_N_ORDERS, delta, order);
}
