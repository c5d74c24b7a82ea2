/*
 * A 64 KiB firmware image that turns the vCPU into a store engine for the qtest
 * test_cpu_stores.py: in 32-bit protected mode it waits for a request in RAM
 * (0x1000: 1 = go, 0x1004: address, 0x1008: 8-byte value), makes it as ONE 8-byte
 * MMX store (what a CPU's movq or Linux's writeq is, unlike qtest's byte streams),
 * writes 2 to 0x1000 and waits for the next one.
 */
    .code16
    .text
    .globl _start
_start:
    cli
    mov     %cs, %ax                /* 0xf000: the image is aliased at 0xf0000 */
    mov     %ax, %ds
    lgdtl   gdt_desc
    mov     %cr0, %eax
    or      $1, %eax
    mov     %eax, %cr0
    ljmpl   $0x08, $(0xf0000 + pm32)

    .code32
pm32:
    mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
wait:
    cmpl    $1, 0x1000
    jne     wait
    mov     0x1004, %edi
    movq    0x1008, %mm0
    movq    %mm0, (%edi)
    movl    $2, 0x1000
    jmp     wait

    .p2align 3
gdt:
    .quad   0
    .quad   0x00cf9a000000ffff      /* flat 32-bit code */
    .quad   0x00cf92000000ffff      /* flat data */
gdt_desc:
    .word   gdt_desc - gdt - 1
    .long   0xf0000 + gdt

    .org    0xfff0                  /* the reset vector: real mode, CS base 0xffff0000 */
    .code16
    ljmp    $0xf000, $_start
    .org    0x10000
