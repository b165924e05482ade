// The per-byte floor of docs/PERFORMANCE.md (session 11 table, goal 1): one thread copying
// pieces into a ring and summing them. gcc -O2 -march=native -o /tmp/copy_bound scripts/copy_bound.c
// && /tmp/copy_bound RING_MIB PIECE_BYTES
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static uint16_t csum(const uint8_t*p,size_t n){uint64_t s=0;while(n>=8){uint64_t v;memcpy(&v,p,8);s+=(v&0xffffffff)+(v>>32);p+=8;n-=8;}while(n>1){s+=p[0]|p[1]<<8;p+=2;n-=2;}if(n)s+=p[0];while(s>>16)s=(s&0xffff)+(s>>16);return ~s;}
int main(int argc,char**argv){
  size_t ring=(argc>1?atol(argv[1]):4)<<20, chunk=argc>2?atol(argv[2]):1448, user=256<<10;
  uint8_t*src=malloc(ring),*dst=malloc(ring),*ub=malloc(user);memset(src,1,ring);memset(dst,2,ring);memset(ub,3,user);
  size_t total=8ull<<30; volatile uint32_t sink=0;
  // 1: user -> write queue (sender copy)
  double t=now(); size_t off=0,uo=0;
  for(size_t d=0;d<total;d+=chunk){ if(off+chunk>ring)off=0; if(uo+chunk>user)uo=0; memcpy(dst+off,ub+uo,chunk); off+=chunk; uo+=chunk;}
  double c1=total/(now()-t)/1e9;
  // 2: checksum of chunks in the ring
  t=now(); off=0; size_t tot2=total/4;
  for(size_t d=0;d<tot2;d+=chunk){ if(off+chunk>ring)off=0; sink+=csum(dst+off,chunk); off+=chunk;}
  double c2=tot2/(now()-t)/1e9;
  printf("ring %zu MiB chunk %zu: copy %.2f GB/s, checksum %.2f GB/s, copy+checksum per side %.2f GB/s\n",ring>>20,chunk,c1,c2,1/(1/c1+1/c2));
  return 0;}
