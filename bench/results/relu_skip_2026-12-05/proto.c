/* proto.c: a stand-alone measurement, not part of the build: dW1 of one dense 64-sample block
 * (784 x 256) by the current tile shape against tiles that skip the zeros of dh (inactive ReLU
 * units). A: 4 pixels x 4 vectors of units, dh packed per panel (the avx512 set's shape, read
 * over dense rows). B: one unit's list of its non-zero dh entries, vectors over CV vectors of
 * pixels, accumulated into a transposed (H, D) array (no transposes back into dW1's (D, H)
 * layout timed). C: two units' merged list, zeros where one of them is inactive.
 * Build and run (p: the share of non-zero dh entries):
 *   gcc -O3 -mavx512f -mfma -ffp-contract=fast -DVL=16 -DCV=4 -DCV2=4 proto.c -o p && ./p 0.5
 * Prints dense-equivalent GFLOP/s (2 * 64 * 784 * 256 per call) and each variant's speed over A. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#ifndef VL
#define VL 16
#endif
typedef float vf __attribute__((vector_size(VL*4)));
typedef float vfu __attribute__((vector_size(VL*4), aligned(4), may_alias));
static inline vf ld(const float*p){return *(const vfu*)p;}
static inline void st(float*p, vf v){*(vfu*)p=v;}
#define X4(a) a,a,a,a
#if VL==16
static inline vf splat(float a){return (vf){X4(a),X4(a),X4(a),X4(a)};}
#else
static inline vf splat(float a){return (vf){X4(a),X4(a)};}
#endif
enum {NB=64, D=784, H=256};
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+1e-9*t.tv_nsec;}
/* A: current dense tile: 4 pixels x NV vectors of units, dh packed per panel (NB, NV*VL) */
#define NV 4
static void dw1_A(const float *x, const float *dh, float *g){
  static float hp[NB*NV*VL];
  for(int j=0;j<H;j+=NV*VL){
    for(int s=0;s<NB;s++) memcpy(hp+s*NV*VL, dh+s*H+j, NV*VL*4);
    for(int k=0;k<D;k+=4){
      vf acc[4][NV];
      for(int r=0;r<4;r++)for(int v=0;v<NV;v++) acc[r][v]=ld(g+(k+r)*H+j+v*VL);
      for(int s=0;s<NB;s++){ vf d[NV]; for(int v=0;v<NV;v++) d[v]=ld(hp+s*NV*VL+v*VL);
        for(int r=0;r<4;r++){ vf a=splat(x[s*D+k+r]); for(int v=0;v<NV;v++) acc[r][v]+=a*d[v]; } }
      for(int r=0;r<4;r++)for(int v=0;v<NV;v++) st(g+(k+r)*H+j+v*VL, acc[r][v]);
    }
  }
}
/* B: per-unit lists; gT (H, D) transposed accumulators (no transposes timed here) */
#ifndef CV
#define CV 6
#endif
static float lv[H][NB]; static const float *lp[H][NB]; static int ln[H];
static void dw1_B(const float *x, const float *dh, float *gT){
  memset(ln,0,sizeof ln);
  for(int s=0;s<NB;s++) for(int u=0;u<H;u++){ float d=dh[s*H+u]; if(d!=0){int n=ln[u]++; lv[u][n]=d; lp[u][n]=x+s*D;} }
  int k=0;
  for(;k+CV*VL<=D;k+=CV*VL){
    for(int u=0;u<H;u++){ vf acc[CV]; float *o=gT+u*D+k;
      for(int c=0;c<CV;c++) acc[c]=ld(o+c*VL);
      const float *v=lv[u]; const float *const*p=lp[u]; int n=ln[u];
      for(int i=0;i<n;i++){ vf a=splat(v[i]); const float*xs=p[i]+k; for(int c=0;c<CV;c++) acc[c]+=a*ld(xs+c*VL);}
      for(int c=0;c<CV;c++) st(o+c*VL,acc[c]);
    }
  }
  for(;k<D;k+=VL){
    for(int u=0;u<H;u++){ vf acc=ld(gT+u*D+k); for(int i=0;i<ln[u];i++) acc+=splat(lv[u][i])*ld(lp[u][i]+k); st(gT+u*D+k,acc);} }
}
/* C: pairs of units, union lists */
static float cv2[H/2][NB][2]; static const float *cp[H/2][NB]; static int cn[H/2];
#ifndef CV2
#define CV2 6
#endif
static void dw1_C(const float *x, const float *dh, float *gT){
  memset(cn,0,sizeof cn);
  for(int s=0;s<NB;s++) for(int u=0;u<H;u+=2){ float d0=dh[s*H+u], d1=dh[s*H+u+1]; if(d0!=0||d1!=0){int n=cn[u/2]++; cv2[u/2][n][0]=d0;cv2[u/2][n][1]=d1; cp[u/2][n]=x+s*D;} }
  int k=0;
  for(;k+CV2*VL<=D;k+=CV2*VL){
    for(int u=0;u<H;u+=2){ vf a0[CV2],a1[CV2]; float *o0=gT+u*D+k,*o1=o0+D;
      for(int c=0;c<CV2;c++){a0[c]=ld(o0+c*VL);a1[c]=ld(o1+c*VL);}
      int n=cn[u/2];
      for(int i=0;i<n;i++){ vf b0=splat(cv2[u/2][i][0]), b1=splat(cv2[u/2][i][1]); const float*xs=cp[u/2][i]+k; for(int c=0;c<CV2;c++){vf xx=ld(xs+c*VL); a0[c]+=b0*xx; a1[c]+=b1*xx;}}
      for(int c=0;c<CV2;c++){st(o0+c*VL,a0[c]);st(o1+c*VL,a1[c]);}
    }
  }
  for(;k<D;k+=VL){
    for(int u=0;u<H;u++){ vf acc=ld(gT+u*D+k); for(int i=0;i<NB;i++){float d=dh[i*H+u]; if(d!=0) acc+=splat(d)*ld(x+i*D+k);} st(gT+u*D+k,acc);} }
}
int main(int argc,char**argv){
  double p=argc>1?atof(argv[1]):0.5;
  float *x=aligned_alloc(64,NB*D*4),*dh=aligned_alloc(64,NB*H*4),*g=aligned_alloc(64,D*H*4),*gT=aligned_alloc(64,D*H*4);
  srand(1); for(int i=0;i<NB*D;i++) x[i]=rand()/(float)RAND_MAX-0.5f;
  for(int i=0;i<NB*H;i++) dh[i]= (rand()/(double)RAND_MAX<p)? rand()/(float)RAND_MAX-0.5f:0.f;
  memset(g,0,D*H*4); memset(gT,0,D*H*4);
  for(int rep=0;rep<3;rep++){
  double best[3]={1e9,1e9,1e9};
  for(int it=0;it<7;it++){
    double t=now(); for(int r=0;r<50;r++) dw1_A(x,dh,g); t=now()-t; if(t<best[0])best[0]=t;
    t=now(); for(int r=0;r<50;r++) dw1_B(x,dh,gT); t=now()-t; if(t<best[1])best[1]=t;
    t=now(); for(int r=0;r<50;r++) dw1_C(x,dh,gT); t=now()-t; if(t<best[2])best[2]=t;
  }
  double fl=2.0*NB*D*H*50;
  printf("p=%.2f A %.1f GF/s  B %.1f (%.2fx)  C %.1f (%.2fx)  [dense-equiv GF/s]\n",p,fl/best[0]/1e9,fl/best[1]/1e9,best[0]/best[1],fl/best[2]/1e9,best[0]/best[2]);
  }
  return 0;
}
